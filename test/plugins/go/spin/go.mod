module talaria/spin

go 1.19
