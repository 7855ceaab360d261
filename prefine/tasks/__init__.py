"""Fine-tuning tasks: data, heads and evaluation for each task prefine supports."""
