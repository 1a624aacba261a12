"""Helpers shared by the tests: services, processes, a local web server, generated inputs."""
