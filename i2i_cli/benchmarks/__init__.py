"""Speed and memory measurements behind `i2i bench` (never run by the tests)."""
