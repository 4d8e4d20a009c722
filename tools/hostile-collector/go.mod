module tracedapp.dev/tools/hostile-collector

go 1.24
