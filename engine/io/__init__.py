"""File inputs and outputs of the offline tools: expression timelines and mp4 writing."""
