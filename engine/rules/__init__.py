"""Classification and routing rules: validated data, pure functions, explained decisions."""
