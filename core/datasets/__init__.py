"""Where clips come from: dataset layouts (MIMII, DCASE, plain folders), train/test splits, the demo plant.

Pure: nothing here touches the database, the dashboard or the environment.
"""
