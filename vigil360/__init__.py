"""vigil360: grounded, spoken explanations of anomalies around a 360-degree camera wearer."""

__version__ = "0.1.0"
