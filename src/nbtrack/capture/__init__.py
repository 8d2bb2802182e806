"""What a cell and its kernel tell us: params from code, the notebook, which values are secret."""
