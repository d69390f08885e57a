"""smsfold's composition root: the command line (stack, and the gateway, worker and demo commands)."""
