package awsstore

// GroupID exposes groupID to the package's tests.
var GroupID = groupID
