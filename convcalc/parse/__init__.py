"""Parsing: flag and YAML scalars, safe YAML with line tracking, flags/--spec -> a layer spec."""
