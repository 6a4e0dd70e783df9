"""data: see the README's Layout section."""
