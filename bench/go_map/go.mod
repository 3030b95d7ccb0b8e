module github.com/billiard/billiard/bench/go_map

go 1.19

require github.com/billiard/billiard/bindings/go v0.0.0

replace github.com/billiard/billiard/bindings/go => ../../bindings/go
