#include "server/server.h"

int main(int argc, char **argv)
{
    return wr_server_main(argc, argv);
}
