"""The Accelerate training engine shared by every stage."""
