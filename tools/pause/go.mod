module tracedapp.dev/tools/pause

go 1.24
