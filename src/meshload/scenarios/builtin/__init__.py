"""Built-in scenario files (one YAML plan each); listed and found by `meshload.scenarios.files`."""
