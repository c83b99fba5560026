"""Reports: tidy CSV, method x metric tables and the self-contained HTML leaderboard, all read from a run's store."""
