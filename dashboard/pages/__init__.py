"""One module per page: overview, facility, subsidy."""
