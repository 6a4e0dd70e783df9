"""evaluation: see the README's Layout section."""
