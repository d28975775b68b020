"""aiogram-dialog dialogs, one module per workflow; states in `states.py`."""
