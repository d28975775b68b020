"""Teaching an agent from the console: corrections kept as FAQ pairs in its "Corrections" source."""
