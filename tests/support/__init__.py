"""Real components for tests (servers on loopback, started and stopped by fixtures)."""
