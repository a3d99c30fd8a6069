"""The shared representation as versioned data, and the checker of files against it."""

REPRESENTATION_VERSION = "0.1.0"
