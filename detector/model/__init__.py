"""model: see the README's Layout section."""
