"""Constructs that stacks are composed of; one per file, each with a documented props class."""
