"""Reports: read models over usage roll-ups, events and lead status events, and the notebook runner."""
