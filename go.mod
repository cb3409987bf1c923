module github.com/amtsbote/amtsbote

go 1.26.8
