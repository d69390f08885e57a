"""The send pipeline's building blocks: segments, quiet hours, the ordered checks, links, vendors."""
