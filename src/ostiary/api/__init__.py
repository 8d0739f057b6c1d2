"""The admin API's thin HTTP edge: routers parse input, call one service, render the result."""
