module github.com/billiard/billiard/bindings/go

go 1.19
