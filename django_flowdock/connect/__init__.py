"""Connecting, configuring and removing flows: the Setup URI, the Configuration URI and
the admin's connect screens, as views and forms over the Sources API."""
