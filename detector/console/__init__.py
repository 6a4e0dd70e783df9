"""console: see the README's Layout section."""
