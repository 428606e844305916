"""Unit tests of the pure core; a package so module names cannot clash with tests/e2e."""
