"""The web page's side of the server: a gRPC-Web gateway onto the gRPC port."""
