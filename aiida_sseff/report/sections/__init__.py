"""One module per WorkChain or study with a report section (each registers itself with ``register_section``)."""
