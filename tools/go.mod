// Module tools pins the protobuf code generators used by `make generate`.
// buf, helm and kubectl-validate live in their own modules below because
// their dependency graphs conflict with each other and with these pins.
module github.com/serbero/serbero/tools

go 1.26

tool (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc
	google.golang.org/protobuf/cmd/protoc-gen-go
)

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
