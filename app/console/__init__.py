"""The first-party web console: static pages and JavaScript modules, one more API client."""
