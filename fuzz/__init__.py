"""Coverage-guided fuzz targets (atheris) for extraction and verification: ``make fuzz``."""
