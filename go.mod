module github.com/parkinglot/parkinglot

go 1.26
