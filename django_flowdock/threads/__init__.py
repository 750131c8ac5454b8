"""Models as threads: the mixins' options, what a save captures, and how a thread and
its messages are rendered at delivery."""
