package pgstore_test

import (
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// The store's receive can wait for a message: claims long-poll its queue.
var _ core.QueueLongPoller = (*pgstore.Store)(nil)
