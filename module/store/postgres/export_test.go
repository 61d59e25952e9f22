package postgres

// DueEventsSQL is DueEvents' query on the tables of schema and prefix,
// for tests that look at its plan.
func DueEventsSQL(schema, prefix string) string { return dueEventsSQL(newNames(schema, prefix)) }
