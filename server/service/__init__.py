"""The service layer: use cases over the store, taking and returning domain objects."""
