"""Server-rendered pages, one module per part of the product, like ``labeling/api/``."""
