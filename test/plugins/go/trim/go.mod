module talaria/trim

go 1.19
