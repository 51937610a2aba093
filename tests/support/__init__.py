"""Helpers shared by the test suites: real processes started the way the platforms start them."""
