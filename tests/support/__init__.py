"""Test helpers shared by every app's tests (servers on loopback, fakes)."""
