"""pipeline: see the README's Layout section."""
