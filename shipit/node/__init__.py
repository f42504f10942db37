"""What runs on the scheduler and the workers."""
