"""The online half: ``ecomrec publish`` copies gold tables into a key-value store as an immutable version,
``ecomrec serve`` answers from it over HTTP with no Spark and no JVM (FastAPI + uvicorn)."""
