"""Light modules shared by the API and the workers: settings, catalog, records, errors."""
