package store

// BatchUpdate is one transition of Store.UpdateBatch: what Update's
// arguments are, and (set by UpdateBatch) what Update would have returned.
type BatchUpdate struct {
	ID   string
	From Status
	T    Transition

	// Out and Err are the item's outcome, as Update's results.
	Out *Intent
	Err error
}
