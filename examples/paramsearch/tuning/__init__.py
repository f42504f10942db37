"""A model to tune: edit `model.py` and run the search again; workers get the edit."""
