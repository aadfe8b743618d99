"""The gateway's routes, one module per service they front; ``gateway.service`` composes them."""
