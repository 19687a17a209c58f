"""One ``APIRouter`` per resource (customers, products, lists, events, operations, the page), wired by
:func:`ecomrec_spark.serving.api.create_app`; each module only turns HTTP into calls of :mod:`..lookup`."""
