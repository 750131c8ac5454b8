"""Talking to Flowdock: the HTTP client, the OAuth 2.0 protocol and the Sources API."""
